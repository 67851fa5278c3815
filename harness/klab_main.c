/* klab: the kernel lab's command line. Subcommands live in two tables (harness/commands.h). */
#include <stdio.h>
#include <string.h>
#include "harness/commands.h"

static void usage(FILE *f) {
  fprintf(f, "usage: klab COMMAND [options]   (klab COMMAND --help for each)\ncommands:\n");
  const klab_command *tables[] = {klab_core_commands, klab_bundle_commands};
  for (int t = 0; t < 2; t++)
    for (const klab_command *c = tables[t]; c->name; c++) fprintf(f, "  %-9s %s\n", c->name, c->summary);
  fprintf(f, "exit status: 0 all passed, 1 a variant failed (or regressed), 2 usage or error\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  const klab_command *tables[] = {klab_core_commands, klab_bundle_commands};
  for (int t = 0; t < 2; t++)
    for (const klab_command *c = tables[t]; c->name; c++)
      if (strcmp(c->name, argv[1]) == 0) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "klab: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
