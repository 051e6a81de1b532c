"""Invariants over a workspace's synthesised CloudFormation templates: what AWS enforces at run time
and neither cdk-nag nor the emulator checks (e.g. who may use which KMS key).

Shaped like cdk-nag's rules: one rule per module, a pure function named like its module, taking every
template of a workspace at once (stack name -> template dict) and returning findings; an empty list
means the rule holds. `cfn` holds what the rules share: reading templates as one workspace.
"""
