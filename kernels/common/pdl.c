/* The process-wide PDL switch (pdl.h). */
#include "kernels/common/pdl.h"

static int pdl_on;

int klab_pdl_set(int on) {
  int was = pdl_on;
  pdl_on = on != 0;
  return was;
}

int klab_pdl_enabled(void) { return pdl_on; }
