"""``python -m ensemble.cli``: the same command line as ``affect-ens``, the form torchrun starts
(``torchrun --nproc-per-node N -m ensemble.cli train-member ...``)."""

from ensemble.cli import main

main()
