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
set xrange [62.8021:8193]
set yrange [97.9803:2341.8]
set title 'Roofline: gemm-qwen3-vs-cublas on NVIDIA H100 80GB HBM3 (sm_90)'
roof(x) = (x * B / 1000.0 < P) ? x * B / 1000.0 : P
set arrow 1 from ridge, graph 0 to ridge, first P nohead dt 3 lw 1.5 lc rgb '#555555'
set label 1 sprintf("ridge point %.0f FLOP/B", ridge) at ridge * 1.15, first P / 4 left tc rgb '#333333'
set label 2 sprintf('bf16 GEMM peak %.0f TFLOP/s', P) at ridge / 1.15, first P * 1.3 right tc rgb '#000000'
lx = ridge / 40.0
set label 3 sprintf('HBM read %.2f TB/s', B / 1000.0) at lx, first roof(lx) * 1.083 left rotate by 49.1 tc rgb '#000000'
set label 10 'gemm/optimized' at 1117, 775.4 offset 0.8,0.6 left font ',9' tc rgb '#1f77b4'
set label 11 'gemm/cublas' at 1229, 780.6 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 12 'gemm/cublaslt' at 1755, 769.8 offset 0.8,0.6 left font ',9' tc rgb '#000000'
set label 13 'gemm/wgmma_mc2' at 1755, 742 offset 0.8,0.6 left font ',9' tc rgb '#9467bd'
plot \
  roof(x) with lines lw 2.5 lc rgb '#000000' title 'roofline (measured)', \
  'plots/roofline.dat' index 0 using 1:2 with points pt 7 ps 1.4 lc rgb '#1f77b4' title 'gemm/optimized', \
  'plots/roofline.dat' index 1 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemm/cublas (vendor)', \
  'plots/roofline.dat' index 2 using 1:2 with points pt 5 ps 1.8 lc rgb '#000000' title 'gemm/cublaslt (vendor)', \
  'plots/roofline.dat' index 3 using 1:2 with points pt 9 ps 1.4 lc rgb '#9467bd' title 'gemm/wgmma_mc2'
set terminal svg size W,H noenhanced font 'Sans,11' background rgb 'white'
set output 'roofline.svg'
replot
unset output
