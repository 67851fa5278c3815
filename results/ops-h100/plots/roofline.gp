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
B = 3130.77  # measured streaming-read bandwidth, GB/s
P = 792.614  # measured bf16 GEMM rate, TFLOP/s
ridge = P * 1000.0 / B
set xrange [0.0416667:9831]
set yrange [3.75667e-06:2328.9]
set title 'Roofline: ops-h100 on unknown GPU (unknown)'
roof(x) = (x * B / 1000.0 < P) ? x * B / 1000.0 : P
set arrow 1 from ridge, graph 0 to ridge, first P nohead dt 3 lw 1.5 lc rgb '#555555'
set label 1 sprintf("ridge point %.0f FLOP/B", ridge) at ridge * 1.15, first P / 4 left tc rgb '#333333'
set label 2 sprintf('bf16 GEMM peak %.0f TFLOP/s', P) at ridge / 1.15, first P * 1.3 right tc rgb '#000000'
lx = ridge / 40.0
set label 3 sprintf('HBM read %.2f TB/s', B / 1000.0) at lx, first roof(lx) * 1.659 left rotate by 24.7 tc rgb '#000000'
set label 10 'add_rmsnorm/naive' at 0.625, 1.027 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 11 'add_rmsnorm/optimized' at 0.625, 1.83 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 12 'addnorm_gemv/naive' at 0.9996, 1.259 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 13 'addnorm_gemv/optimized' at 3.987, 6.033 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 14 'addnorm_gemv_silu/naive' at 3.997, 1.622 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 15 'addnorm_gemv_silu/optimized' at 3.997, 8.874 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 16 'argmax/naive' at 0.25, 0.002536 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 17 'argmax/optimized' at 0.25, 0.7352 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 18 'attn_decode/naive' at 7.984, 0.05545 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 19 'attn_decode/optimized' at 4, 10.93 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 20 'attn_decode/optimized_devctx' at 4, 10.87 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 21 'attn_decode/opt_nopf' at 4, 10.59 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 22 'attn_decode/opt_w4' at 4, 10.15 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 23 'attn_decode/opt_cluster' at 4, 10.41 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 24 'attn_prefill/naive' at 819.6, 3.346 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 25 'attn_prefill/optimized' at 3277, 333.4 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 26 'gemm/naive' at 2731, 23.05 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 27 'gemm/mma' at 1229, 276.7 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 28 'gemm/optimized' at 1229, 742.4 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 29 'gemm/cublas' at 890.4, 776.3 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 30 'gemm/cublaslt' at 1019, 753.7 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 31 'gemm/wgmma_tuned' at 1229, 707.2 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 32 'gemm/wgmma_mc2' at 1229, 460.6 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 33 'gemm/wgmma_n160' at 1019, 688.7 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 34 'gemm/wgmma_n192' at 423.7, 652.6 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 35 'gemv/naive' at 15.86, 0.4765 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 36 'gemv/optimized' at 15.89, 41.45 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 37 'gemv/cublas' at 15.89, 41.4 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 38 'gemv/cublaslt' at 15.89, 41.33 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 39 'gemv/v3' at 15.89, 35.49 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 40 'gemv/cc' at 3.993, 8.977 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 41 'gemv/cc_xs' at 3.993, 9.574 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 42 'gemv/cc_xs_b4' at 1.998, 5.544 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 43 'gemv/mma' at 15.89, 39.72 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 44 'gemv/mma_pf' at 15.89, 40.38 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 45 'gemv/mma_xs' at 3.993, 11.23 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 46 'qk_norm_rope/naive' at 1.458, 0.4772 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 47 'qk_norm_rope/optimized' at 1.458, 3.972 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 48 'qk_norm_rope/optimized_devpos' at 1.458, 3.965 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 49 'qk_norm_rope/w2s6' at 1.458, 3.888 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 50 'qk_norm_rope/w6s2' at 1.458, 3.962 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 51 'qk_norm_rope/w12s1' at 1.458, 3.794 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 52 'qk_norm_rope/pipe' at 1.458, 3.688 offset 0.8,0.6 left font ',9' tc rgb '#2ca02c'
set label 53 'qk_norm_rope/v1' at 1.458, 3.649 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
set label 54 'rmsnorm/naive' at 1, 1.49 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 55 'rmsnorm/optimized' at 1, 2.874 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 56 'sample/naive' at 0.125, 0.002043 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 57 'sample/optimized' at 0.125, 0.03104 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 58 'silu_mul/naive' at 0.8333, 1.475 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 59 'silu_mul/optimized' at 0.8333, 2.476 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
plot \
  roof(x) with lines lw 2.5 lc rgb '#000000' title 'roofline (measured)', \
  'plots/roofline.dat' index 0 using 1:2 with points pt 6 ps 1.4 lc rgb '#1f77b4' title 'add_rmsnorm/naive', \
  'plots/roofline.dat' index 1 using 1:2 with points pt 7 ps 1.4 lc rgb '#d62728' title 'add_rmsnorm/optimized', \
  'plots/roofline.dat' index 2 using 1:2 with points pt 6 ps 1.4 lc rgb '#2ca02c' title 'addnorm_gemv/naive', \
  'plots/roofline.dat' index 3 using 1:2 with points pt 7 ps 1.4 lc rgb '#9467bd' title 'addnorm_gemv/optimized', \
  'plots/roofline.dat' index 4 using 1:2 with points pt 6 ps 1.4 lc rgb '#ff7f0e' title 'addnorm_gemv_silu/naive', \
  'plots/roofline.dat' index 5 using 1:2 with points pt 7 ps 1.4 lc rgb '#8c564b' title 'addnorm_gemv_silu/optimized', \
  'plots/roofline.dat' index 6 using 1:2 with points pt 6 ps 1.4 lc rgb '#e377c2' title 'argmax/naive', \
  'plots/roofline.dat' index 7 using 1:2 with points pt 7 ps 1.4 lc rgb '#17becf' title 'argmax/optimized', \
  'plots/roofline.dat' index 8 using 1:2 with points pt 6 ps 1.4 lc rgb '#bcbd22' title 'attn_decode/naive', \
  'plots/roofline.dat' index 9 using 1:2 with points pt 7 ps 1.4 lc rgb '#7f7f7f' title 'attn_decode/optimized', \
  'plots/roofline.dat' index 10 using 1:2 with points pt 9 ps 1.4 lc rgb '#1f77b4' title 'attn_decode/optimized_devctx', \
  'plots/roofline.dat' index 11 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'attn_decode/opt_nopf', \
  'plots/roofline.dat' index 12 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'attn_decode/opt_w4', \
  'plots/roofline.dat' index 13 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'attn_decode/opt_cluster', \
  'plots/roofline.dat' index 14 using 1:2 with points pt 6 ps 1.4 lc rgb '#ff7f0e' title 'attn_prefill/naive', \
  'plots/roofline.dat' index 15 using 1:2 with points pt 7 ps 1.4 lc rgb '#8c564b' title 'attn_prefill/optimized', \
  'plots/roofline.dat' index 16 using 1:2 with points pt 6 ps 1.4 lc rgb '#e377c2' title 'gemm/naive', \
  'plots/roofline.dat' index 17 using 1:2 with points pt 9 ps 1.4 lc rgb '#17becf' title 'gemm/mma', \
  'plots/roofline.dat' index 18 using 1:2 with points pt 7 ps 1.4 lc rgb '#bcbd22' title 'gemm/optimized', \
  'plots/roofline.dat' index 19 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemm/cublas (vendor)', \
  'plots/roofline.dat' index 20 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemm/cublaslt (vendor)', \
  'plots/roofline.dat' index 21 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'gemm/wgmma_tuned', \
  'plots/roofline.dat' index 22 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'gemm/wgmma_mc2', \
  'plots/roofline.dat' index 23 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'gemm/wgmma_n160', \
  'plots/roofline.dat' index 24 using 1:2 with points pt 9 ps 1.4 lc rgb '#ff7f0e' title 'gemm/wgmma_n192', \
  'plots/roofline.dat' index 25 using 1:2 with points pt 6 ps 1.4 lc rgb '#8c564b' title 'gemv/naive', \
  'plots/roofline.dat' index 26 using 1:2 with points pt 7 ps 1.4 lc rgb '#e377c2' title 'gemv/optimized', \
  'plots/roofline.dat' index 27 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemv/cublas (vendor)', \
  'plots/roofline.dat' index 28 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemv/cublaslt (vendor)', \
  'plots/roofline.dat' index 29 using 1:2 with points pt 9 ps 1.4 lc rgb '#7f7f7f' title 'gemv/v3', \
  'plots/roofline.dat' index 30 using 1:2 with points pt 9 ps 1.4 lc rgb '#1f77b4' title 'gemv/cc', \
  'plots/roofline.dat' index 31 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'gemv/cc_xs', \
  'plots/roofline.dat' index 32 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'gemv/cc_xs_b4', \
  'plots/roofline.dat' index 33 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'gemv/mma', \
  'plots/roofline.dat' index 34 using 1:2 with points pt 9 ps 1.4 lc rgb '#ff7f0e' title 'gemv/mma_pf', \
  'plots/roofline.dat' index 35 using 1:2 with points pt 9 ps 1.4 lc rgb '#8c564b' title 'gemv/mma_xs', \
  'plots/roofline.dat' index 36 using 1:2 with points pt 6 ps 1.4 lc rgb '#e377c2' title 'qk_norm_rope/naive', \
  'plots/roofline.dat' index 37 using 1:2 with points pt 7 ps 1.4 lc rgb '#17becf' title 'qk_norm_rope/optimized', \
  'plots/roofline.dat' index 38 using 1:2 with points pt 9 ps 1.4 lc rgb '#bcbd22' title 'qk_norm_rope/optimized_devpos', \
  'plots/roofline.dat' index 39 using 1:2 with points pt 9 ps 1.4 lc rgb '#7f7f7f' title 'qk_norm_rope/w2s6', \
  'plots/roofline.dat' index 40 using 1:2 with points pt 9 ps 1.4 lc rgb '#1f77b4' title 'qk_norm_rope/w6s2', \
  'plots/roofline.dat' index 41 using 1:2 with points pt 9 ps 1.4 lc rgb '#d62728' title 'qk_norm_rope/w12s1', \
  'plots/roofline.dat' index 42 using 1:2 with points pt 9 ps 1.4 lc rgb '#2ca02c' title 'qk_norm_rope/pipe', \
  'plots/roofline.dat' index 43 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'qk_norm_rope/v1', \
  'plots/roofline.dat' index 44 using 1:2 with points pt 6 ps 1.4 lc rgb '#ff7f0e' title 'rmsnorm/naive', \
  'plots/roofline.dat' index 45 using 1:2 with points pt 7 ps 1.4 lc rgb '#8c564b' title 'rmsnorm/optimized', \
  'plots/roofline.dat' index 46 using 1:2 with points pt 6 ps 1.4 lc rgb '#e377c2' title 'sample/naive', \
  'plots/roofline.dat' index 47 using 1:2 with points pt 7 ps 1.4 lc rgb '#17becf' title 'sample/optimized', \
  'plots/roofline.dat' index 48 using 1:2 with points pt 6 ps 1.4 lc rgb '#bcbd22' title 'silu_mul/naive', \
  'plots/roofline.dat' index 49 using 1:2 with points pt 7 ps 1.4 lc rgb '#7f7f7f' title 'silu_mul/optimized'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'roofline.svg'
replot
unset output
