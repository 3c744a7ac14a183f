#!/bin/sh
# Open MPI's remote launcher in place of ssh (mpirun --mca plm_rsh_agent):
#   agent.sh HOST COMMAND...
# runs COMMAND (Open MPI's orted command line) with sh in the network
# namespace standing for HOST, with that host's own HOME and TMPDIR (Open
# MPI's session directory), and appends HOST to DIR/launches.
# STRATA_NETNS_HOSTS maps hosts, space-separated "HOST,NAMESPACE,DIR" entries
# (run.sh sets it; orted inherits it, so its own launches map the same way).
host=$1
shift
for entry in $STRATA_NETNS_HOSTS; do
  IFS=, read -r name ns dir <<EOF_ENTRY
$entry
EOF_ENTRY
  if [ "$name" = "$host" ]; then
    echo "$host" >>"$dir/launches"
    exec ip netns exec "$ns" env HOME="$dir" TMPDIR="$dir/tmp" sh -c "$*"
  fi
done
echo "agent.sh: no network namespace for host $host (STRATA_NETNS_HOSTS: $STRATA_NETNS_HOSTS)" >&2
exit 1
