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
set xrange [0.332833:2009.67]
set yrange [0.00486333:1959.61]
set title 'Roofline: qwen3-family-gemv-vs-cublas on NVIDIA H100 80GB HBM3 (sm_90)'
roof(x) = (x * B / 1000.0 < P) ? x * B / 1000.0 : P
set arrow 1 from ridge, graph 0 to ridge, first P nohead dt 3 lw 1.5 lc rgb '#555555'
set label 1 sprintf("ridge point %.0f FLOP/B", ridge) at ridge * 1.15, first P / 4 left tc rgb '#333333'
set label 2 sprintf('bf16 GEMM peak %.0f TFLOP/s', P) at ridge / 1.15, first P * 1.3 right tc rgb '#000000'
lx = ridge / 40.0
set label 3 sprintf('HBM read %.2f TB/s', B / 1000.0) at lx, first roof(lx) * 1.381 left rotate by 26.9 tc rgb '#000000'
set label 10 'gemv/naive' at 0.9997, 0.4508 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 11 'gemv/optimized' at 0.9998, 3.193 offset 0.8,0.6 left font ',9' tc rgb '#d62728'
set label 12 'gemv/cublas' at 0.9998, 2.901 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 13 'gemv/cublaslt' at 0.9995, 2.901 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 14 'gemv/v3' at 0.9998, 3.193 offset 0.8,0.6 left font ',9' tc rgb '#ff7f0e'
set label 15 'gemv/cc' at 0.9997, 3.072 offset 0.8,0.6 left font ',9' tc rgb '#8c564b'
set label 16 'gemv/cc_xs' at 0.9997, 3.097 offset 0.8,0.6 left font ',9' tc rgb '#e377c2'
set label 17 'gemv/cc_xs_b4' at 0.9997, 3.079 offset 0.8,0.6 left font ',9' tc rgb '#17becf'
set label 18 'gemv/mma' at 0.9997, 2.985 offset 0.8,0.6 left font ',9' tc rgb '#bcbd22'
set label 19 'gemv/mma_pf' at 0.9997, 3.086 offset 0.8,0.6 left font ',9' tc rgb '#7f7f7f'
set label 20 'gemv/mma_xs' at 0.9997, 3.092 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
plot \
  roof(x) with lines lw 2.5 lc rgb '#000000' title 'roofline (measured)', \
  'plots/roofline.dat' index 0 using 1:2 with points pt 6 ps 1.4 lc rgb '#1f77b4' title 'gemv/naive', \
  'plots/roofline.dat' index 1 using 1:2 with points pt 7 ps 1.4 lc rgb '#d62728' title 'gemv/optimized', \
  'plots/roofline.dat' index 2 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemv/cublas (vendor)', \
  'plots/roofline.dat' index 3 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemv/cublaslt (vendor)', \
  'plots/roofline.dat' index 4 using 1:2 with points pt 9 ps 1.4 lc rgb '#ff7f0e' title 'gemv/v3', \
  'plots/roofline.dat' index 5 using 1:2 with points pt 9 ps 1.4 lc rgb '#8c564b' title 'gemv/cc', \
  'plots/roofline.dat' index 6 using 1:2 with points pt 9 ps 1.4 lc rgb '#e377c2' title 'gemv/cc_xs', \
  'plots/roofline.dat' index 7 using 1:2 with points pt 9 ps 1.4 lc rgb '#17becf' title 'gemv/cc_xs_b4', \
  'plots/roofline.dat' index 8 using 1:2 with points pt 9 ps 1.4 lc rgb '#bcbd22' title 'gemv/mma', \
  'plots/roofline.dat' index 9 using 1:2 with points pt 9 ps 1.4 lc rgb '#7f7f7f' title 'gemv/mma_pf', \
  'plots/roofline.dat' index 10 using 1:2 with points pt 9 ps 1.4 lc rgb '#1f77b4' title 'gemv/mma_xs'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'roofline.svg'
replot
unset output
