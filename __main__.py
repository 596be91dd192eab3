"""Pulumi entry point: `pulumi up` on a stack runs this with that stack's config (stacks/Pulumi.<stack>.yaml)."""

from meshkit.engine.sources import last_deployed_outputs
from meshkit.pulumi.program import main

main(read_deployed=last_deployed_outputs)
