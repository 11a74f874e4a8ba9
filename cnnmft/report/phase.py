"""Report section: order-chaos phase diagrams and critical lines (tanh, erf, relu)."""

import numpy as np

TITLE = "Phase diagrams and critical lines"


def build(ctx):
    """Phase diagrams (xi_c, c*), critical lines and the depth scale at sigma_b2 = 0.05."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnmft import critical_point, fixed_point, phase_diagram

    nw, nb = (40, 20) if ctx.quick else (160, 80)
    sw = np.linspace(0.5, 4.0, nw)
    sb = np.linspace(0.0, 0.5, nb)
    parts = []
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for ax, act in zip(axes, ["tanh", "erf", "relu"]):
        pd = phase_diagram(act, sw, sb)
        pd.plot("xi_c", ax=ax)
        parts.append(ctx.numbers(f"phase_{act}", pd.to_dict()))
    parts.insert(0, ctx.figure(
        "phase_xi_c", fig,
        "Correlation depth scale xi_c over (sigma_w2, sigma_b2); the dashed line is chi_1 = 1, "
        "where xi_c diverges. relu has no finite fixed point for sigma_w2 >= 2 (blank)."))

    # critical lines parametrised by q*
    q = np.geomspace(1e-4, 3.0, 80 if ctx.quick else 300)
    fig, ax = plt.subplots(figsize=(5.5, 4))
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

    # depth scales along sigma_b2 = 0.05 (Schoenholz et al. Fig. 3 style)
    sw1 = np.linspace(0.8, 4.0, 60 if ctx.quick else 400)
    fp = fixed_point("tanh", sw1, 0.05)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.semilogy(sw1, fp.xi_c, label=r"$\xi_c$")
    ax.semilogy(sw1, fp.xi_q, label=r"$\xi_q$")
    ax.semilogy(sw1, 6 * fp.xi_c, "--", label=r"$6\xi_c$ (trainable depth)")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("layers")
    ax.set_title(r"tanh, $\sigma_b^2 = 0.05$")
    ax.legend()
    parts.append(ctx.figure("depth_scales_tanh", fig,
                            "Depth scales of tanh at sigma_b2 = 0.05; xi_c diverges at the "
                            "critical sigma_w2 = 1.7610."))
    parts.append(ctx.numbers("depth_scales_tanh", {
        "sigma_w2": sw1, "q_star": fp.q_star, "c_star": fp.c_star, "chi_1": fp.chi_1,
        "xi_q": fp.xi_q, "xi_c": fp.xi_c, "status": fp.status}))
    return "\n".join(parts)
