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
set xrange [0.33792:214.775]
set xlabel 'minimal traffic per invocation (MB, log scale)'
set ylabel '% of measured streaming-read bandwidth'
set yrange [0:110]
set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead lw 2 dt 2 lc rgb '#000000'
set label 1 '100% = 3.13 TB/s (measured streaming read)' at graph 0.01, first 100 offset 0,0.7 left
set key outside right top vertical Left reverse box spacing 1.2
set title 'Bandwidth of memory-bound ops: attention on NVIDIA H100 80GB HBM3 (sm_90)'
plot \
  'plots/bandwidth.dat' index 0 using 1:2 with linespoints pt 6 ps 1.2 lw 2 lc rgb '#1f77b4' title 'attn_decode/naive', \
  'plots/bandwidth.dat' index 1 using 1:2 with linespoints pt 7 ps 1.2 lw 2 lc rgb '#d62728' title 'attn_decode/optimized', \
  'plots/bandwidth.dat' index 2 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#2ca02c' title 'attn_decode/optimized_devctx', \
  'plots/bandwidth.dat' index 3 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#9467bd' title 'attn_decode/opt_nopf', \
  'plots/bandwidth.dat' index 4 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'attn_decode/opt_w4', \
  'plots/bandwidth.dat' index 5 using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#8c564b' title 'attn_decode/opt_cluster'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'bandwidth.svg'
replot
unset output
