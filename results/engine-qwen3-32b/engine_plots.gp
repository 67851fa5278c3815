# Engine plots from engine.csv alone: `cd BUNDLE && gnuplot engine_plots.gp`.
set datafile separator ','
set terminal pngcairo size 900,560 noenhanced
set key bottom right
set grid
set output 'decode_tok_s.png'
set title 'Batch-1 decode tok/s vs generated tokens (median; dashed: weights+KV roofline)'
set xlabel 'tokens generated (tg)'
set ylabel 'decode tok/s'
set yrange [0:*]
plot for [pp in "`awk -F, 'NR>1 && $1=="kernel-lab"{print $3}' engine.csv | sort -un | tr '\n' ' '`"] \
  'engine.csv' using ((strcol(1) eq 'kernel-lab' && $3 == pp+0) ? $4 : 1/0):11 with linespoints title 'kernel-lab pp='.pp, \
  for [pp in "`awk -F, 'NR>1 && $1=="kernel-lab"{print $3}' engine.csv | sort -un | tr '\n' ' '`"] \
  'engine.csv' using ((strcol(1) eq 'kernel-lab' && $3 == pp+0) ? $4 : 1/0):14 with lines dashtype 2 title 'roofline pp='.pp, \
  'engine.csv' using ((strcol(1) ne 'kernel-lab') ? $4 : 1/0):11 with points pointtype 7 title 'transformers (peers)'
set output 'ttft.png'
set title 'Time to first token vs prompt length (median)'
set xlabel 'prompt tokens (pp)'
set ylabel 'TTFT ms'
set logscale x 2
plot 'engine.csv' using ((strcol(1) eq 'kernel-lab') ? $3 : 1/0):9 with linespoints title 'kernel-lab', \
  'engine.csv' using ((strcol(1) ne 'kernel-lab') ? $3 : 1/0):9 with points pointtype 7 title 'transformers (peers)'
