#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Path strings as POSIX reads them — what NSString's path methods did (FoundationEssentials has none of them).
/// Strings in, strings out: nothing here touches the file system except `home`.
package enum PathText {
    /// `directory/component` with one separator between them.
    package static func appending(_ component: String, to directory: String) -> String {
        if directory.isEmpty { return component }
        if component.isEmpty { return directory }
        return directory.hasSuffix("/") ? directory + component : directory + "/" + component
    }

    /// The path without its last component: "/a/b" → "/a", "/a" → "/", "a" → "", "/a/b/" → "/a".
    package static func parent(of path: String) -> String {
        let trimmed = withoutTrailingSlashes(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        let head = withoutTrailingSlashes(String(trimmed[..<slash]))
        return head.isEmpty ? "/" : head
    }

    /// The last component: "/a/b.npy" → "b.npy", "/a/b/" → "b", "/" → "/".
    package static func lastComponent(_ path: String) -> String {
        let trimmed = withoutTrailingSlashes(path)
        if trimmed == "/" { return "/" }
        return trimmed.lastIndex(of: "/").map { String(trimmed[trimmed.index(after: $0)...]) } ?? trimmed
    }

    /// The text after the last dot of the last component, "" when there is none or the dot starts the name
    /// (".npy" is a hidden file with no extension).
    package static func fileExtension(_ path: String) -> String {
        let name = lastComponent(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[name.index(after: dot)...])
    }

    /// "~" and "~/…" with the home directory, "~user/…" with that user's; anything else unchanged.
    package static func expandingTilde(_ path: String) -> String {
        guard path.hasPrefix("~") else { return path }
        let slash = path.firstIndex(of: "/") ?? path.endIndex
        let user = path[path.index(after: path.startIndex)..<slash]
        let rest = String(path[slash...])
        if user.isEmpty { return withoutTrailingSlashes(home()) + rest }
        guard let entry = getpwnam(String(user)), let directory = entry.pointee.pw_dir else { return path }
        return withoutTrailingSlashes(String(cString: directory)) + rest
    }

    /// $HOME when set, otherwise the password database's entry for this user, otherwise "/".
    package static func home() -> String {
        if let value = getenv("HOME"), value.pointee != 0 { return String(cString: value) }
        if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir { return String(cString: directory) }
        return "/"
    }

    private static func withoutTrailingSlashes(_ path: String) -> String {
        var out = Substring(path)
        while out.count > 1 && out.hasSuffix("/") { out = out.dropLast() }
        return String(out)
    }
}
