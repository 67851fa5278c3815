# speedup_vs_cublas: written by `klab plot` from this bundle's kernels.csv; re-render with
#   cd <bundle> && gnuplot plots/speedup_vs_cublas.gp
W = 12000; H = 920
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size W,H noenhanced font 'Sans,11' background rgb 'white'
} else {
  set terminal png size W,H noenhanced
}
set output 'speedup_vs_cublas.png'
set encoding utf8
set border lw 1.2
set grid xtics ytics mxtics mytics lc rgb '#dddddd' lw 1
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb '#333333'
set boxwidth 0.9
set xtics rotate by 60 right font ',9' nomirror
set grid noxtics
set ylabel 'speedup vs vendor (cuBLAS/cuBLASLt median / variant median)'
set yrange [0:1.432]
set key top left box opaque
set bmargin 20
set title 'gemv vs vendor: qwen3-4b-decode on NVIDIA H100 80GB HBM3 (sm_90); above 1.0 = faster than cuBLAS'
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb '#000000' front
set label 1 'vendor = 1.0' at graph 1, first 1 offset -1,0.7 right front font ',10'
plot \
  'plots/speedup_vs_cublas.dat' using 2:xtic(1) lc rgb '#d62728' title 'naive', \
  'plots/speedup_vs_cublas.dat' using 3 lc rgb '#2ca02c' title 'optimized', \
  'plots/speedup_vs_cublas.dat' using 4 lc rgb '#9467bd' title 'v3', \
  'plots/speedup_vs_cublas.dat' using 5 lc rgb '#ff7f0e' title 'cc', \
  'plots/speedup_vs_cublas.dat' using 6 lc rgb '#8c564b' title 'cc_xs', \
  'plots/speedup_vs_cublas.dat' using 7 lc rgb '#e377c2' title 'cc_xs_b4', \
  'plots/speedup_vs_cublas.dat' using 8 lc rgb '#17becf' title 'mma', \
  'plots/speedup_vs_cublas.dat' using 9 lc rgb '#bcbd22' title 'mma_pf', \
  'plots/speedup_vs_cublas.dat' using 10 lc rgb '#7f7f7f' title 'mma_xs', \
  'plots/speedup_vs_cublas.dat' using 11 lc rgb '#1f77b4' title 'wgmma', \
  'plots/speedup_vs_cublas.dat' using 12 lc rgb '#d62728' title 'wgmma_xs', \
  'plots/speedup_vs_cublas.dat' using 13 lc rgb '#2ca02c' title 'wgmma_r10', \
  'plots/speedup_vs_cublas.dat' using 14 lc rgb '#9467bd' title 'wgmma_k2'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'speedup_vs_cublas.svg'
replot
unset output
