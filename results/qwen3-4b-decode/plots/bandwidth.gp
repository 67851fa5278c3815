# bandwidth: written by `klab plot` from this bundle's kernels.csv; re-render with
#   cd <bundle> && gnuplot plots/bandwidth.gp
W = 1280; H = 800
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size W,H noenhanced font 'Sans,11' background rgb 'white'
} else {
  set terminal png size W,H noenhanced
}
set output 'bandwidth.png'
set encoding utf8
set border lw 1.2
set grid xtics ytics mxtics mytics lc rgb '#dddddd' lw 1
set logscale x
set format x '%g'
set xrange [0.006405:1252.57]
set xlabel 'minimal traffic per invocation (MB, log scale)'
set ylabel '% of measured streaming-read bandwidth'
set yrange [0:111.5]
set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead lw 2 dt 2 lc rgb '#000000'
set label 1 '100% = 3.12 TB/s (measured streaming read)' at graph 0.01, first 100 offset 0,0.7 left
set key outside right top vertical Left reverse box spacing 1.2
set title 'Bandwidth of memory-bound ops: qwen3-4b-decode on NVIDIA H100 80GB HBM3 (sm_90)'
plot \
  'plots/bandwidth.dat' index 0 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#1f77b4' title 'rmsnorm/naive', \
  'plots/bandwidth.dat' index 1 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#d62728' title 'rmsnorm/optimized', \
  'plots/bandwidth.dat' index 2 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#2ca02c' title 'gemv/naive', \
  'plots/bandwidth.dat' index 3 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#9467bd' title 'gemv/optimized', \
  'plots/bandwidth.dat' index 4 using 1:2 with linespoints pt 5 ps 1.2 lw 2 dt 2 lc rgb '#ff7f0e' title 'gemv/cublas (vendor)', \
  'plots/bandwidth.dat' index 5 using 1:2 with linespoints pt 5 ps 1.2 lw 2 dt 2 lc rgb '#8c564b' title 'gemv/cublaslt (vendor)', \
  'plots/bandwidth.dat' index 6 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#e377c2' title 'gemv/v3', \
  'plots/bandwidth.dat' index 7 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#17becf' title 'gemv/cc', \
  'plots/bandwidth.dat' index 8 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#bcbd22' title 'gemv/cc_xs', \
  'plots/bandwidth.dat' index 9 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f' title 'gemv/cc_xs_b4', \
  'plots/bandwidth.dat' index 10 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#1f77b4' title 'gemv/mma', \
  'plots/bandwidth.dat' index 11 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#d62728' title 'gemv/mma_pf', \
  'plots/bandwidth.dat' index 12 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#2ca02c' title 'gemv/mma_xs', \
  'plots/bandwidth.dat' index 13 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#9467bd' title 'gemv/wgmma', \
  'plots/bandwidth.dat' index 14 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'gemv/wgmma_xs', \
  'plots/bandwidth.dat' index 15 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#8c564b' title 'gemv/wgmma_r10', \
  'plots/bandwidth.dat' index 16 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#e377c2' title 'gemv/wgmma_k2', \
  'plots/bandwidth.dat' index 17 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#17becf' title 'embedding/naive', \
  'plots/bandwidth.dat' index 18 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#bcbd22' title 'embedding/optimized', \
  'plots/bandwidth.dat' index 19 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f' title 'embedding/vpl4', \
  'plots/bandwidth.dat' index 20 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#1f77b4' title 'embedding/vpl16', \
  'plots/bandwidth.dat' index 21 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#d62728' title 'embedding/cached', \
  'plots/bandwidth.dat' index 22 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#2ca02c' title 'embedding/v1', \
  'plots/bandwidth.dat' index 23 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#9467bd' title 'add_rmsnorm/naive', \
  'plots/bandwidth.dat' index 24 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'add_rmsnorm/optimized', \
  'plots/bandwidth.dat' index 25 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#8c564b' title 'qk_norm_rope/naive', \
  'plots/bandwidth.dat' index 26 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#e377c2' title 'qk_norm_rope/optimized', \
  'plots/bandwidth.dat' index 27 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#17becf' title 'qk_norm_rope/optimized_devpos', \
  'plots/bandwidth.dat' index 28 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#bcbd22' title 'qk_norm_rope/w2s6', \
  'plots/bandwidth.dat' index 29 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f' title 'qk_norm_rope/w6s2', \
  'plots/bandwidth.dat' index 30 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#1f77b4' title 'qk_norm_rope/w12s1', \
  'plots/bandwidth.dat' index 31 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#d62728' title 'qk_norm_rope/pipe', \
  'plots/bandwidth.dat' index 32 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#2ca02c' title 'qk_norm_rope/v1', \
  'plots/bandwidth.dat' index 33 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#9467bd' title 'silu_mul/naive', \
  'plots/bandwidth.dat' index 34 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'silu_mul/optimized', \
  'plots/bandwidth.dat' index 35 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#8c564b' title 'attn_decode/naive', \
  'plots/bandwidth.dat' index 36 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#e377c2' title 'attn_decode/optimized', \
  'plots/bandwidth.dat' index 37 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#17becf' title 'attn_decode/optimized_devctx', \
  'plots/bandwidth.dat' index 38 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#bcbd22' title 'attn_decode/opt_nopf', \
  'plots/bandwidth.dat' index 39 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f' title 'attn_decode/opt_w4', \
  'plots/bandwidth.dat' index 40 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#1f77b4' title 'attn_decode/opt_cluster', \
  'plots/bandwidth.dat' index 41 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#d62728' title 'argmax/naive', \
  'plots/bandwidth.dat' index 42 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#2ca02c' title 'argmax/optimized', \
  'plots/bandwidth.dat' index 43 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#9467bd' title 'sample/naive', \
  'plots/bandwidth.dat' index 44 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'sample/optimized'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'bandwidth.svg'
replot
unset output
