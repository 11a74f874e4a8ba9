"""``cnnmft train``: train a vanilla CNN (digits by default) and write metrics, plots, checkpoints.

Examples::

    cnnmft train --depth 1000 --channels 16 --steps 200 --out runs/d1000
    cnnmft train --depth 1000 --out runs/d1000 --resume          # continue the same run
    cnnmft train --dataset mnist --data-dir ~/data/mnist --depth 10000 --channels 128 --device cuda
    torchrun --nproc_per_node 2 -m cnnmft.pytorch.distributed --depth 100 --steps 50   # DDP
"""

from __future__ import annotations


def _segments(s):
    if s in ("auto", "none", "None"):
        return None if s.lower() == "none" else "auto"
    return int(s)


def configure(p):
    """Add the arguments of ``cnnmft train``."""
    g = p.add_argument_group("model")
    g.add_argument("--depth", type=int, default=10, help="layers of the deep block (default 10)")
    g.add_argument("--channels", type=int, default=16, help="width of the deep block (default 16)")
    g.add_argument("--kernel-size", type=int, default=3)
    g.add_argument("--init", default="delta_orthogonal",
                   choices=["delta_orthogonal", "block_orthogonal", "tunable_orthogonal",
                            "gaussian"], help="deep-block kernels (default delta_orthogonal)")
    g.add_argument("--sigma-w2", type=float, default=None,
                   help="weight variance (default: critical point with q* = 1/depth)")
    g.add_argument("--sigma-b2", type=float, default=None, help="bias variance")
    g.add_argument("--q-star", type=float, default=None, help="q* of the default critical point")
    g.add_argument("--v", default="uniform", help="Gaussian variance profile (uniform, delta, "
                   "binomial, tunable)")
    g.add_argument("--t", type=float, default=None, help="tunable-family parameter")
    g.add_argument("--act", default="tanh")
    g.add_argument("--padding", default="circular", choices=["circular", "zeros"])
    g.add_argument("--stem-strides", type=int, nargs="*", default=None,
                   help="stem strides (default: 1 2 for digits, 1 2 2 otherwise)")
    g.add_argument("--checkpoint-segments", type=_segments, default="auto",
                   help="activation checkpointing: auto (sqrt(depth) segments), none, or a count")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="digits",
                   choices=["digits", "digits28", "mnist", "cifar10"],
                   help="digits (8x8, offline, default), digits28 (resized to 28x28), mnist, "
                   "cifar10")
    d.add_argument("--data-dir", default=None, help="folder with MNIST IDX or CIFAR-10 batches")
    d.add_argument("--max-train", type=int, default=None)
    d.add_argument("--max-test", type=int, default=None)
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    o.add_argument("--lr", type=float, default=0.01)
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--deep-lr-scale", default="1.0",
                   help="learning-rate multiplier of the deep block: a number or 1/depth")
    o.add_argument("--weight-decay", type=float, default=0.0)
    o.add_argument("--schedule", default="constant",
                   choices=["constant", "cosine", "step", "linear"])
    o.add_argument("--warmup-steps", type=int, default=0)
    o.add_argument("--steps", type=int, default=200)
    o.add_argument("--batch-size", type=int, default=64)
    o.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("run")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    r.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    r.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (off by default)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.add_argument("--eval-every", type=int, default=50)
    r.add_argument("--grad-norm-layers", type=int, nargs="*", default=None,
                   help="1-based deep layers whose gradient norm is logged (default first, "
                   "middle, last)")
    r.add_argument("--out", default=None,
                   help="output folder (metrics CSV/JSON, plots, checkpoint)")
    r.add_argument("--checkpoint-every", type=int, default=0)
    r.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args):
    """Build a :class:`cnnmft.pytorch.train.TrainConfig` from parsed arguments."""
    from cnnmft.pytorch.train import TrainConfig

    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, depth=args.depth, channels=args.channels,
        kernel_size=args.kernel_size, init=args.init, sigma_w2=args.sigma_w2,
        sigma_b2=args.sigma_b2, q_star=args.q_star, v=args.v, t=args.t, act=args.act,
        padding=args.padding,
        stem_strides=tuple(args.stem_strides) if args.stem_strides is not None else None,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        deep_lr_scale=(args.deep_lr_scale if args.deep_lr_scale == "1/depth"
                       else float(args.deep_lr_scale)),
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        steps=args.steps, batch_size=args.batch_size, eval_every=args.eval_every,
        grad_norm_layers=tuple(args.grad_norm_layers) if args.grad_norm_layers else None,
        seed=args.seed, device=args.device, dtype=args.dtype, tf32=args.tf32,
        checkpoint_segments=args.checkpoint_segments, num_threads=args.threads,
        out_dir=args.out, checkpoint_every=args.checkpoint_every, resume=args.resume,
        plots=not args.no_plots, max_train=args.max_train, max_test=args.max_test)


def run(args) -> int:
    """Train and print a summary; exit code 0, or 3 when the loss became non-finite."""
    import os

    from cnnmft.pytorch.train import train

    res = train(config_from_args(args), progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{res.message}: train acc {res.train_accuracy:.4f}, test acc "
              f"{res.test_accuracy:.4f}, final loss {res.final_loss:.4g} "
              f"(sigma_w2={res.sigma_w2:.6g}, sigma_b2={res.sigma_b2:.3g}, "
              f"{res.step_time:.3g} s/step)")
        if args.out:
            print(f"metrics, plots and checkpoint in {args.out}")
    return 0 if res.success else 3
