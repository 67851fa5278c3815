/* GPU test of `klab peaks`' measurements: the size curve (CUPTI) against the event-timed streaming read, and
 * the curve's shape. The numbers are the device's; the checks are physical, not tuned to one GPU:
 * - the curve is complete (every size 4 KiB .. 1 GiB), bytes ascending, times not decreasing;
 * - a 4 KiB read is latency-bound: its rate is under 1/20 of the 1 GiB rate, and it takes > 0.3 us;
 * - at 1 GiB the two timers agree: the curve's rate is within 0.85 .. 1.10 of the event-timed 1 GiB read
 *   (CUPTI excludes launch overhead, about 0.1% of a 350 us kernel; a larger gap means one timer is wrong);
 * - interpolation gives the curve's own points back and grows with bytes.
 * Skips (exit 77) where there is no GPU or CUPTI is held by another profiler. */
#include <math.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "harness/klab.h"
#include "harness/peaks.h"
#include "harness/run.h"
#include "harness/timing.h"
#include "test_util.h"

int main(void) {
  char why[256];
  if (!klab_have_gpu(why, sizeof why)) klab_test_skip("test_gpu_peaks", why);
  if (!klab_cupti_start(why, sizeof why)) klab_test_skip("test_gpu_peaks", why);
  klab_err err;
  klab_peaks p;
  memset(&p, 0, sizeof p);
  CHECK_MSG(klab_measure_read_bw((size_t)1 << 30, &p.read_bw_gbps, 0, &err) == 0, "%s", err.msg);
  CHECK_MSG(klab_measure_read_curve(&p, 0, &err) == 0, "%s", err.msg);
  p.valid = 1;
  CHECK(p.ncurve == 29);
  CHECK(p.curve_bytes[0] == 4096 && p.curve_bytes[p.ncurve - 1] == (double)(1 << 30));
  for (int i = 1; i < p.ncurve; i++) CHECK(p.curve_bytes[i] > p.curve_bytes[i - 1] && p.curve_us[i] >= p.curve_us[i - 1]);
  if (p.ncurve == 29) {
    double small = p.curve_bytes[0] / p.curve_us[0] * 1e-3, big = p.curve_bytes[28] / p.curve_us[28] * 1e-3;
    printf("read curve: 4 KiB %.2f us (%.1f GB/s), 16 MiB %.2f us, 1 GiB %.1f us (%.1f GB/s); event-timed 1 GiB read %.1f GB/s\n",
           p.curve_us[0], small, klab_peaks_read_floor_us(&p, 16 << 20), p.curve_us[28], big, p.read_bw_gbps);
    CHECK_MSG(p.curve_us[0] > 0.3 && small < big / 20, "4 KiB: %.3f us, %.1f GB/s", p.curve_us[0], small);
    CHECK_MSG(big > 0.85 * p.read_bw_gbps && big < 1.10 * p.read_bw_gbps, "1 GiB: curve %.1f GB/s, events %.1f GB/s", big,
              p.read_bw_gbps);
    for (int i = 0; i < p.ncurve; i++) CHECK_NEAR(klab_peaks_read_floor_us(&p, p.curve_bytes[i]), p.curve_us[i], 1e-9);
    CHECK(klab_peaks_read_floor_us(&p, 3e6) <= klab_peaks_read_floor_us(&p, 3.5e6));
  }
  return klab_test_finish("test_gpu_peaks");
}
