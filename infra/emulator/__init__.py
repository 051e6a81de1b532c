"""A local AWS for the branch lifecycle: moto's server, taught what our templates need, driven by the
real CDK CLI. The templates it receives are the ones that deploy to AWS, byte for byte; every
difference between moto and CloudFormation is handled inside the emulator (`moto_gaps`), never in
the stacks.
"""
