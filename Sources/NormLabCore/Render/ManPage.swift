/// The manual page, normlab(1), in roff, from the command declarations and the settings table (so it cannot
/// drift from `help`): `normlab --man > normlab.1`. `usage` is the executable's own flag summary.
public enum ManPage {
    public static func render(usage: String) -> String {
        var page: [String] = [
            ".TH NORMLAB 1 \"\" \"NormLab \(NormLabVersion.current)\" \"User Commands\"",
            ".SH NAME",
            "normlab \\- explore normalisation layers: every statistic, every step of forward and backward",
            ".SH SYNOPSIS",
            ".nf",
        ] + usage.split(separator: "\n", omittingEmptySubsequences: false).map { escape(String($0)) } + [
            ".fi",
            ".SH DESCRIPTION",
            "NormLab computes GroupNorm, LayerNorm, InstanceNorm, BatchNorm and RMSNorm in two exact conventions (the paper and PyTorch's, and the PyDLLib library's), shows every number of a pass, derives it step by step, checks gradients by finite differences, and judges a hand-written implementation's results, naming the mistake.",
            "With no FILE and no \\fB\\-c\\fR it reads commands: interactively on a terminal (after the startup file), silently from a pipe.",
            ".SH COMMANDS",
        ]
        for help in CommandTable.commands.map({ $0.help }) {
            page.append(".TP")
            page.append(help.usage.map { "\\fB" + escape($0) + "\\fR" }.joined(separator: "\n.br\n"))
            page.append(escape(help.summary.prefix(1).uppercased() + help.summary.dropFirst()) + ".")
            if !help.details.isEmpty {
                page.append(".br")
                page.append(escape(help.details.split(separator: "\n").map { $0.trimmed() }.joined(separator: " ")))
            }
        }
        page.append(".SH SETTINGS")
        for setting in Settings.table {
            page.append(".TP")
            page.append("\\fBset \(setting.name)\\fR \(escape(setting.valueWords))")
            page.append(escape(setting.meaning) + "; default " + escape(setting.defaultWords) + ".")
        }
        page += [
            ".SH FILES",
            ".TP", "\\fI$NORMLAB_INIT\\fR, else \\fI$XDG_CONFIG_HOME/normlab/init.nl\\fR (\\fI~/.config/normlab/init.nl\\fR)",
            "The startup file, run before a terminal session.",
            ".TP", "\\fI$NORMLAB_HISTORY\\fR, else \\fI$XDG_STATE_HOME/normlab/history\\fR (\\fI~/.local/state/normlab/history\\fR)",
            "The history (\\fI/dev/null\\fR turns it off); sessions sharing it merge their lines.",
            ".SH EXIT STATUS",
            "0 when every command succeeded; 1 when one failed or output could not be written; 2 for bad flags; 141 when standard output was closed; 128 + N after signal N (SIGTERM, SIGHUP).",
            ".SH SEE ALSO",
            "The tutorial sessions (\\fBhelp tour\\fR) and README.md in the source repository.",
        ]
        return page.joined(separator: "\n") + "\n"
    }

    /// Backslashes doubled, a leading dot or quote protected, so user-facing text is printed as written.
    static func escape(_ text: String) -> String {
        var out = text.replacing("\\", with: "\\e").replacing("-", with: "\\-")
        if out.hasPrefix(".") || out.hasPrefix("'") { out = "\\&" + out }
        return out
    }
}
