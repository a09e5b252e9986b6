// GNU readline for the normlab executable (Debian: libreadline-dev; macOS: Homebrew's readline, found through
// pkg-config). stdio.h must come first: readline.h uses FILE.
#include <stdio.h>
#include <readline/readline.h>
#include <readline/history.h>

// Differences between readline versions are settled here, where the preprocessor can see them; Swift cannot
// test a C macro.

/// GNU readline 6.3 and later run this hook when a signal interrupts a read; older ones and libedit's readline
/// emulation (macOS's /usr/include) have none, and then NormLab's getc loop alone sees the signal flags.
/// Returns 1 when the hook was installed.
static inline int normlab_set_signal_event_hook(int (*hook)(void)) {
#if defined(RL_VERSION_MAJOR) && (RL_VERSION_MAJOR > 6 || (RL_VERSION_MAJOR == 6 && RL_VERSION_MINOR >= 3))
    rl_signal_event_hook = hook;
    return 1;
#else
    (void)hook;
    return 0;
#endif
}

/// The characters that end a word for completion: `const char *` since GNU readline 7, `char *` before it and
/// in libedit, so Swift sees a different type on each.
static inline void normlab_set_word_breaks(const char *characters) {
    rl_completer_word_break_characters = (char *)characters;
}
