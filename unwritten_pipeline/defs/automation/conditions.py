import dagster as dg

# eager: requested when a dependency has new data (and none is missing or in progress); only in
# the latest time window for partitioned assets. The second term keeps a failed blocking check
# (parity, probe difference) from propagating.
REBUILD = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("rebuild when an input changed and upstream checks passed")

# training_splits reads whichever validated partitions exist: the 7 × N partitions never generated
# (dates before the project ran, or skipped nights) must not block it, so eager's
# "no dependency missing" clause is dropped for it.
REBUILD_FROM_PARTITIONS = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("rebuild when a validated partition changed")
