"""Plain text (labels, captions, headers) made safe for LaTeX, in one place for every LaTeX renderer."""

from __future__ import annotations

# The ten characters LaTeX reads as syntax, then the non-ASCII symbols hbench's text uses, which pdfLaTeX
# only accepts in math mode. One pass over the characters, so no replacement is itself escaped again.
_REPLACEMENTS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "†": r"$\dagger$", "α": r"$\alpha$", "γ": r"$\gamma$", "λ": r"$\lambda$", "ρ": r"$\rho$",
    "Δ": r"$\Delta$", "≠": r"$\neq$", "≤": r"$\leq$", "≥": r"$\geq$", "≈": r"$\approx$", "×": r"$\times$",
    "·": r"$\cdot$", "∞": r"$\infty$", "−": "-",
}


def latex_escape(text: str) -> str:
    """`text` as LaTeX source that typesets as the text itself: `a_b & 5%` → `a\\_b \\& 5\\%`."""
    return "".join(_REPLACEMENTS.get(char, char) for char in text)
