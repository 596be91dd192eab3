"""Layer 4, the Pulumi shell: components that register what :mod:`meshkit.mesh` renders, and the program
that turns a stack's config into them. The only layer that imports ``pulumi``."""
