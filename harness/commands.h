/* The klab subcommands. Each takes argc/argv after the subcommand name (argv[0] is the name) and returns
 * the process exit code: 0 all passed, 1 a FAIL (or regression), 2 bad usage or an error. */
#ifndef KLAB_COMMANDS_H
#define KLAB_COMMANDS_H

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} klab_command;

/* harness/cli.c: list, check, bench, peaks. */
extern const klab_command klab_core_commands[];
/* harness/commands_bundle.c: env, sweep, plot, compare (bundles). Terminated by {NULL}. */
extern const klab_command klab_bundle_commands[];

#endif
