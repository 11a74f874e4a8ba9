"""Report section: order-chaos phase diagrams and critical lines (tanh, erf, relu)."""

import numpy as np

from cnnmft import critical_point, critical_sigma_w2, fixed_point, phase_diagram

TITLE = "Phase diagrams and critical lines"


def build(ctx):
    """Phase diagrams (xi_c, c*), critical lines and the depth scale at sigma_b2 = 0.05."""
    import matplotlib.pyplot as plt

    nw, nb = {"quick": (40, 20), "default": (120, 60)}.get(ctx.level, (160, 80))
    sw = np.linspace(0.5, 4.0, nw)
    sb = np.linspace(0.0, 0.5, nb)
    parts = []
    bar = ctx.bar(5, "phase diagrams")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for ax, act in zip(axes, ["tanh", "erf", "relu"]):
        pd = phase_diagram(act, sw, sb)
        pd.plot(ax=ax, quantity="xi_c")
        ax.set_title(f"{act}: correlation depth scale $\\xi_c$")
        parts.append(ctx.numbers(f"phase_{act}", pd.to_dict()))
        bar.update()
    parts.insert(
        0,
        ctx.figure(
            "phase_xi_c",
            fig,
            "Correlation depth scale xi_c over (sigma_w2, sigma_b2); the dashed line is chi_1 = 1, "
            "where xi_c diverges. relu has no finite fixed point for sigma_w2 >= 2 (blank).",
        ),
    )

    # critical lines parametrised by q*
    q = np.geomspace(1e-4, 3.0, 80 if ctx.quick else 300)
    fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
    rows = {"q_star": q}
    for act in ["tanh", "erf"]:
        cp = critical_point(act, q)
        ax.plot(cp.sigma_w2, cp.sigma_b2, label=act)
        rows[f"{act}_sigma_w2"] = cp.sigma_w2
        rows[f"{act}_sigma_b2"] = cp.sigma_b2
    ax.plot([2.0], [0.0], "ko", label="relu (single point)")
    ax.set_xlim(0.5, 3.0)
    ax.set_ylim(0, 0.25)
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$\sigma_b^2$")
    ax.legend()
    ax.set_title("order-chaos critical lines")
    parts.append(ctx.figure("critical_lines", fig, "Critical lines chi_1 = 1, parametrised by q*."))
    parts.append(ctx.numbers("critical_lines", rows))
    bar.update()

    # depth scales along sigma_b2 = 0.05 (Schoenholz et al. Fig. 3 style)
    sw1 = np.linspace(0.8, 4.0, 60 if ctx.quick else 400)
    fp = fixed_point("tanh", sw1, 0.05)
    fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
    ax.semilogy(sw1, fp.xi_c, label=r"$\xi_c$")
    ax.semilogy(sw1, fp.xi_q, label=r"$\xi_q$")
    ax.semilogy(sw1, 6 * fp.xi_c, "--", label=r"$6\xi_c$ (trainable depth)")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("layers")
    ax.set_title(r"tanh, $\sigma_b^2 = 0.05$")
    ax.legend()
    parts.append(
        ctx.figure(
            "depth_scales_tanh",
            fig,
            "Depth scales of tanh at sigma_b2 = 0.05; xi_c diverges at the "
            "critical sigma_w2 = 1.7610.",
        )
    )
    parts.append(
        ctx.numbers(
            "depth_scales_tanh",
            {
                "sigma_w2": sw1,
                "q_star": fp.q_star,
                "c_star": fp.c_star,
                "chi_1": fp.chi_1,
                "xi_q": fp.xi_q,
                "xi_c": fp.xi_c,
                "status": fp.status,
            },
        )
    )
    bar.update()
    bar.close()
    _headlines(ctx)
    return "\n".join(parts)


def _headlines(ctx):
    crit = float(np.ravel(critical_sigma_w2("tanh", 0.05).sigma_w2)[0])
    ctx.headline(
        "theory", "tanh critical sigma_w2 at sigma_b2 = 0.05 (chi_1 = 1)", crit, section="phase"
    )
    deep = critical_point("tanh", 1e-4)
    ctx.headline(
        "theory",
        "tanh critical (sigma_w2, sigma_b2) for 10,000 layers (q* = 1e-4)",
        f"({float(np.ravel(deep.sigma_w2)[0]):.6g}, {float(np.ravel(deep.sigma_b2)[0]):.3g})",
        section="phase",
    )
    fp = fixed_point("tanh", np.array([2.5]), 0.05)
    ctx.headline(
        "theory",
        "trainable depth 6 xi_c of tanh at (2.5, 0.05), chaotic",
        float(6 * fp.xi_c[0]),
        section="phase",
    )
