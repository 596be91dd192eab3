"""Pulumi entry point: `pulumi up` on a stack runs this with that stack's config (stacks/Pulumi.<stack>.yaml)."""

from meshkit.pulumi.program import main

main()
