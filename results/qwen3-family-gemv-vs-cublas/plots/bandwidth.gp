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
set xrange [2.62528:2489.82]
set xlabel 'minimal traffic per invocation (MB, log scale)'
set ylabel '% of measured streaming-read bandwidth'
set yrange [0:112.6]
set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead lw 2 dt 2 lc rgb '#000000'
set label 1 '100% = 3.12 TB/s (measured streaming read)' at graph 0.01, first 100 offset 0,0.7 left
set key outside right top vertical Left reverse box spacing 1.2
set title 'Bandwidth of memory-bound ops: qwen3-family-gemv-vs-cublas on NVIDIA H100 80GB HBM3 (sm_90)'
plot \
  'plots/bandwidth.dat' index 0 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#1f77b4' title 'gemv/naive', \
  'plots/bandwidth.dat' index 1 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#d62728' title 'gemv/optimized', \
  'plots/bandwidth.dat' index 2 using 1:2 with linespoints pt 5 ps 1.2 lw 2 dt 2 lc rgb '#2ca02c' title 'gemv/cublas (vendor)', \
  'plots/bandwidth.dat' index 3 using 1:2 with linespoints pt 5 ps 1.2 lw 2 dt 2 lc rgb '#9467bd' title 'gemv/cublaslt (vendor)', \
  'plots/bandwidth.dat' index 4 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'gemv/v3', \
  'plots/bandwidth.dat' index 5 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#8c564b' title 'gemv/cc', \
  'plots/bandwidth.dat' index 6 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#e377c2' title 'gemv/cc_xs', \
  'plots/bandwidth.dat' index 7 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#17becf' title 'gemv/cc_xs_b4', \
  'plots/bandwidth.dat' index 8 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#bcbd22' title 'gemv/mma', \
  'plots/bandwidth.dat' index 9 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f' title 'gemv/mma_pf', \
  'plots/bandwidth.dat' index 10 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#1f77b4' title 'gemv/mma_xs'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'bandwidth.svg'
replot
unset output
