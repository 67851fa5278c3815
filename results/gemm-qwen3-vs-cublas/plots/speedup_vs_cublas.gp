# speedup_vs_cublas: written by `klab plot` from this bundle's kernels.csv; re-render with
#   cd <bundle> && gnuplot plots/speedup_vs_cublas.gp
W = 1732; H = 934
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
set yrange [0:1.202]
set key top left box opaque
set bmargin 21
set title 'gemm vs vendor: gemm-qwen3-vs-cublas on NVIDIA H100 80GB HBM3 (sm_90); above 1.0 = faster than cuBLAS'
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb '#000000' front
set label 1 'vendor = 1.0' at graph 1, first 1 offset -1,0.7 right front font ',10'
plot \
  'plots/speedup_vs_cublas.dat' using 2:xtic(1) lc rgb '#d62728' title 'optimized', \
  'plots/speedup_vs_cublas.dat' using 3 lc rgb '#2ca02c' title 'wgmma_mc2'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'speedup_vs_cublas.svg'
replot
unset output
