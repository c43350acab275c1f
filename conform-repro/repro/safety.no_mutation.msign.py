from conformance.repro import rerun_case
m = rerun_case('/work/main/conform-repro/repro/safety.no_mutation.msign.npz')
print(m.figure, m.value, 'bound', m.tolerance.bound, 'passed', m.passed)
