/* gnuplot plots of a bundle, made from its kernels.csv (+ env.json peaks, shapes.csv labels) alone.
 * Scripts and data go to BUNDLE/plots/ (re-render: cd BUNDLE && gnuplot plots/NAME.gp); images to BUNDLE/. */
#ifndef KLAB_PLOT_H
#define KLAB_PLOT_H
#include <stddef.h>
#include "harness/bundle.h"

#define KLAB_PLOT_ROOFLINE 1
#define KLAB_PLOT_SPEEDUP 2
#define KLAB_PLOT_BANDWIDTH 4

/* Write plots/<name>.gp and plots/<name>.dat for each plot that has data; *written = KLAB_PLOT_* bits;
 * why (may be NULL) lists the plots left out and the reason. 0 ok, -1 with err. */
int klab_plot_scripts(const klab_bundle *b, int *written, char *why, size_t why_len, klab_err *err);
/* Full path of gnuplot when it is on PATH (1), else 0. */
int klab_gnuplot_find(char *path, size_t len);
/* Run gnuplot on the scripts named by `which` (KLAB_PLOT_* bits) in the bundle folder; checks the images
 * exist afterwards. 0 ok, -1 with err (gnuplot missing or failing). */
int klab_plot_render(const klab_bundle *b, int which, klab_err *err);
/* Scripts, then render when `render` and gnuplot exists. note says what was made. */
int klab_plot_bundle(const klab_bundle *b, int render, char *note, size_t note_len, klab_err *err);
const char *klab_plot_name(int bit); /* "roofline", "speedup_vs_cublas", "bandwidth" */

#endif
