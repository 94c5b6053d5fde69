"""``python -m fcinv.training {vae,regressor,resnet} ...``: ``fcinv train ... --ddp``, for torchrun.

Example::

    torchrun --standalone --nproc_per_node 4 -m fcinv.training vae --data ge.h5 --out runs/ge/vae

The options are those of ``fcinv train`` (see ``fcinv train vae --help``); ``--ddp`` is implied.
"""

from __future__ import annotations

import sys

from fcinv.cli.train import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    raise SystemExit(main(argv + ["--ddp"] if argv and not argv[0].startswith("-") else argv))
