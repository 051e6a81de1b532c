"""The branch lifecycle's logic, in Python rather than workflow shell: what the deploy, destroy and
janitor workflows call (`python -m infra.lifecycle <subcommand>`, cli.py), tested against moto.

- guard: refuse to deploy over a workspace whose stacks carry another branch's tag (stacks.py);
- find: a workspace's stacks by their tags (so stacks that only a deleted branch defined are found; stacks.py);
- destroy: empty what must be emptied, delete in reverse dependency order (the alarm stack last), retry a
  stack that fails to delete after emptying it again, remove the bootstrap assets no other stack uses,
  report what went and, when something will not go, name it and raise the workspace's alarm (destroy.py,
  the assets in assets.py);
- orphans: feature workspaces whose branch is gone or that are older than the TTL (janitor.py).

A destroy or janitor run has a time budget (`--budget-minutes`, below the job's timeout and so its
credentials' lifetime): no stack deletion starts, and no wait goes on, past it; what is left is reported
as deferred (the janitor finishes it on its next run) instead of failing later with ExpiredToken.

One module per job, each importing only what it uses from the others (stacks <- assets <- destroy <- cli,
stacks <- janitor <- cli); this package re-exports nothing: import a name from the module that defines it.
"""
