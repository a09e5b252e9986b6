// GNU readline for the normlab executable (Debian: libreadline-dev). stdio.h must come first: readline.h uses FILE.
#include <stdio.h>
#include <readline/readline.h>
#include <readline/history.h>
