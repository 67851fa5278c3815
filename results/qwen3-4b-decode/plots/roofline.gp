# roofline: written by `klab plot` from this bundle's kernels.csv; re-render with
#   cd <bundle> && gnuplot plots/roofline.gp
W = 1280; H = 820
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size W,H noenhanced font 'Sans,11' background rgb 'white'
} else {
  set terminal png size W,H noenhanced
}
set output 'roofline.png'
set encoding utf8
set border lw 1.2
set grid xtics ytics mxtics mytics lc rgb '#dddddd' lw 1
set logscale xy
set format x '%g'
set format y '%g'
set xlabel 'arithmetic intensity (FLOP / byte of minimal traffic)'
set ylabel 'achieved TFLOP/s'
set key outside right top vertical Left reverse box spacing 1.2
B = 3120.29  # measured streaming-read bandwidth, GB/s
P = 783.843  # measured bf16 GEMM rate, TFLOP/s
ridge = P * 1000.0 / B
set xrange [0.0833333:2009.67]
set yrange [9.49e-06:1959.61]
set title 'Roofline: qwen3-4b-decode on NVIDIA H100 80GB HBM3 (sm_90)'
roof(x) = (x * B / 1000.0 < P) ? x * B / 1000.0 : P
set arrow 1 from ridge, graph 0 to ridge, first P nohead dt 3 lw 1.5 lc rgb '#555555'
set label 1 sprintf("ridge point %.0f FLOP/B", ridge) at ridge * 1.15, first P / 4 left tc rgb '#333333'
set label 2 sprintf('bf16 GEMM peak %.0f TFLOP/s', P) at ridge / 1.15, first P * 1.3 right tc rgb '#000000'
lx = ridge / 40.0
set label 3 sprintf('HBM read %.2f TB/s', B / 1000.0) at lx, first roof(lx) * 1.614 left rotate by 21.6 tc rgb '#000000'
set label 10 'rmsnorm/naive' at 0.9697, 0.01977 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 11 'rmsnorm/optimized' at 0.9697, 0.04923 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 12 'gemv/naive' at 13.92, 0.508 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 13 'gemv/optimized' at 15.9, 47.65 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 14 'gemv/cublas' at 15.9, 45.21 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 15 'gemv/cublaslt' at 15.9, 45.2 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 16 'gemv/v3' at 15.9, 39.96 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 17 'gemv/cc' at 3.994, 10.84 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 18 'gemv/cc_xs' at 3.994, 11.16 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 19 'gemv/cc_xs_b4' at 1.998, 6.068 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 20 'gemv/mma' at 15.9, 43.7 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 21 'gemv/mma_pf' at 15.9, 44.23 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 22 'gemv/mma_xs' at 6.981, 20.76 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 23 'gemv/wgmma' at 15.9, 47.83 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 24 'gemv/wgmma_xs' at 15.9, 47.65 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 25 'gemv/wgmma_r10' at 15.9, 47.76 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 26 'gemv/wgmma_k2' at 15.87, 38.7 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 27 'add_rmsnorm/naive' at 0.6154, 0.0234 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 28 'add_rmsnorm/optimized' at 0.6154, 0.05081 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 29 'qk_norm_rope/naive' at 1.456, 0.1572 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 30 'qk_norm_rope/optimized' at 1.456, 0.224 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 31 'qk_norm_rope/optimized_devpos' at 1.456, 0.2036 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 32 'qk_norm_rope/w2s6' at 1.456, 0.1829 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 33 'qk_norm_rope/w6s2' at 1.456, 0.2389 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 34 'qk_norm_rope/w12s1' at 1.456, 0.2327 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 35 'qk_norm_rope/pipe' at 1.456, 0.1847 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 36 'qk_norm_rope/v1' at 1.456, 0.1906 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 37 'silu_mul/naive' at 0.8333, 0.3603 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 38 'silu_mul/optimized' at 0.8333, 0.2795 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 39 'attn_decode/naive' at 3.984, 0.02933 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 40 'attn_decode/optimized' at 4, 10.82 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 41 'attn_decode/optimized_devctx' at 4, 10.85 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 42 'attn_decode/opt_nopf' at 4, 10.67 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 43 'attn_decode/opt_w4' at 4, 10.23 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 44 'attn_decode/opt_cluster' at 4, 10.41 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 45 'argmax/naive' at 0.25, 0.002403 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 46 'argmax/optimized' at 0.25, 0.03344 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 47 'sample/naive' at 0.25, 2.847e-05 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 48 'sample/optimized' at 0.25, 0.01867 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
plot \
  roof(x) with lines lw 2.5 lc rgb '#000000' title 'roofline (measured)', \
  'plots/roofline.dat' index 0 using 1:2 with points pt 6 ps 1.4 lc rgb '#1f77b4' title 'rmsnorm/naive', \
  'plots/roofline.dat' index 1 using 1:2 with points pt 7 ps 1.4 lc rgb '#d62728' title 'rmsnorm/optimized', \
  'plots/roofline.dat' index 2 using 1:2 with points pt 6 ps 1.4 lc rgb '#2ca02c' title 'gemv/naive', \
  'plots/roofline.dat' index 3 using 1:2 with points pt 7 ps 1.4 lc rgb '#9467bd' title 'gemv/optimized', \
  'plots/roofline.dat' index 4 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemv/cublas (vendor)', \
  'plots/roofline.dat' index 5 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemv/cublaslt (vendor)', \
  'plots/roofline.dat' index 6 using 1:2 with points pt 9 ps 1.4 lc rgb '#e377c2' title 'gemv/v3', \
  'plots/roofline.dat' index 7 using 1:2 with points pt 9 ps 1.4 lc rgb '#17becf' title 'gemv/cc', \
  'plots/roofline.dat' index 8 using 1:2 with points pt 9 ps 1.4 lc rgb '#bcbd22' title 'gemv/cc_xs', \
  'plots/roofline.dat' index 9 using 1:2 with points pt 9 ps 1.4 lc rgb '#7f7f7f' title 'gemv/cc_xs_b4', \
  'plots/roofline.dat' index 10 using 1:2 with points pt 9 ps 1.4 lc rgb '#1f77b4' title 'gemv/mma', \
  'plots/roofline.dat' index 11 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'gemv/mma_pf', \
  'plots/roofline.dat' index 12 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'gemv/mma_xs', \
  'plots/roofline.dat' index 13 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'gemv/wgmma', \
  'plots/roofline.dat' index 14 using 1:2 with points pt 9 ps 1.4 lc rgb '#ff7f0e' title 'gemv/wgmma_xs', \
  'plots/roofline.dat' index 15 using 1:2 with points pt 9 ps 1.4 lc rgb '#8c564b' title 'gemv/wgmma_r10', \
  'plots/roofline.dat' index 16 using 1:2 with points pt 9 ps 1.4 lc rgb '#e377c2' title 'gemv/wgmma_k2', \
  'plots/roofline.dat' index 17 using 1:2 with points pt 6 ps 1.4 lc rgb '#17becf' title 'add_rmsnorm/naive', \
  'plots/roofline.dat' index 18 using 1:2 with points pt 7 ps 1.4 lc rgb '#bcbd22' title 'add_rmsnorm/optimized', \
  'plots/roofline.dat' index 19 using 1:2 with points pt 6 ps 1.4 lc rgb '#7f7f7f' title 'qk_norm_rope/naive', \
  'plots/roofline.dat' index 20 using 1:2 with points pt 7 ps 1.4 lc rgb '#1f77b4' title 'qk_norm_rope/optimized', \
  'plots/roofline.dat' index 21 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'qk_norm_rope/optimized_devpos', \
  'plots/roofline.dat' index 22 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'qk_norm_rope/w2s6', \
  'plots/roofline.dat' index 23 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'qk_norm_rope/w6s2', \
  'plots/roofline.dat' index 24 using 1:2 with points pt 9 ps 1.4 lc rgb '#ff7f0e' title 'qk_norm_rope/w12s1', \
  'plots/roofline.dat' index 25 using 1:2 with points pt 9 ps 1.4 lc rgb '#8c564b' title 'qk_norm_rope/pipe', \
  'plots/roofline.dat' index 26 using 1:2 with points pt 9 ps 1.4 lc rgb '#e377c2' title 'qk_norm_rope/v1', \
  'plots/roofline.dat' index 27 using 1:2 with points pt 6 ps 1.4 lc rgb '#17becf' title 'silu_mul/naive', \
  'plots/roofline.dat' index 28 using 1:2 with points pt 7 ps 1.4 lc rgb '#bcbd22' title 'silu_mul/optimized', \
  'plots/roofline.dat' index 29 using 1:2 with points pt 6 ps 1.4 lc rgb '#7f7f7f' title 'attn_decode/naive', \
  'plots/roofline.dat' index 30 using 1:2 with points pt 7 ps 1.4 lc rgb '#1f77b4' title 'attn_decode/optimized', \
  'plots/roofline.dat' index 31 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'attn_decode/optimized_devctx', \
  'plots/roofline.dat' index 32 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'attn_decode/opt_nopf', \
  'plots/roofline.dat' index 33 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'attn_decode/opt_w4', \
  'plots/roofline.dat' index 34 using 1:2 with points pt 9 ps 1.4 lc rgb '#ff7f0e' title 'attn_decode/opt_cluster', \
  'plots/roofline.dat' index 35 using 1:2 with points pt 6 ps 1.4 lc rgb '#8c564b' title 'argmax/naive', \
  'plots/roofline.dat' index 36 using 1:2 with points pt 7 ps 1.4 lc rgb '#e377c2' title 'argmax/optimized', \
  'plots/roofline.dat' index 37 using 1:2 with points pt 6 ps 1.4 lc rgb '#17becf' title 'sample/naive', \
  'plots/roofline.dat' index 38 using 1:2 with points pt 7 ps 1.4 lc rgb '#bcbd22' title 'sample/optimized'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'roofline.svg'
replot
unset output
