"""eval.py's pictures of one model: its attention weights for a prompt, and a text coloured by the
bits the model spent on each character (eval.py --attention, --surprisal)."""
import torch

from tinychar.files import save_figure


@torch.no_grad()
def plot_attention(model, vocab, prompt, path, title):
    """Every head of every layer for one prompt: a grid of (query x key) attention weights."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = vocab.encode(prompt[-model.cfg.seq_len:])[None, :].to(next(model.parameters()).device)
    weights = model.attention_weights(idx)                         # per layer: (1, nh, T, T)
    weights = [w.float().cpu() for w in weights]
    n_layers, n_heads = len(weights), weights[0].size(1)
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.6 * n_heads + 0.6, 2.6 * n_layers + 0.6), squeeze=False)
    labels = [repr(c)[1:-1] for c in prompt[-model.cfg.seq_len:]]
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer][0, head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
            if len(labels) <= 40:
                ax.set_xticks(range(len(labels)), labels, fontsize=5)
                ax.set_yticks(range(len(labels)), labels, fontsize=5)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"{title}: attention weights (rows: query, columns: key) for {prompt!r}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_surprisal(chars, bits, path, title, columns=80):
    """The text on a grid, each character on a background coloured by its bits (colour bar beside)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cells, row, col = [], 0, 0
    for c, b in zip(chars, bits):
        if c == "\n":
            cells.append((row, col, "\u21b5", b))
            row, col = row + 1, 0
            continue
        if col == columns:
            row, col = row + 1, 0
        cells.append((row, col, c, b))
        col += 1
    rows = row + 1
    scored = [b for b in bits if b is not None]
    top = max(8.0, max(scored))
    cmap = plt.get_cmap("magma_r")
    fig, ax = plt.subplots(figsize=(0.13 * columns + 1.5, 0.28 * rows + 1.2))
    for r, c, char, b in cells:
        color = "#dddddd" if b is None else cmap(b / top)
        ax.add_patch(Rectangle((c, -r - 1), 1, 1, color=color))
        ink = "white" if b is not None and b / top > 0.55 else "black"
        ax.text(c + 0.5, -r - 0.5, char, ha="center", va="center", fontsize=7, family="monospace", color=ink)
    ax.set_xlim(0, columns)
    ax.set_ylim(-rows, 0)
    ax.axis("off")
    mappable = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, top), cmap=cmap)
    fig.colorbar(mappable, ax=ax, fraction=0.02, pad=0.01, label="bits")
    ax.set_title(f"{title}: {sum(scored) / len(scored):.3f} bits per character over {len(scored)} characters "
                 f"(the first, grey, has no context)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
