from hypothesis import settings

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.micropython", "tests.fixtures.mqtt",
                  "tests.fixtures.filesystems"]

# No deadline on property tests: Hypothesis fails an example that takes over 200 ms, a timed
# assertion a busy CI machine can trip. Speed lives in the benchmarks (tests/bench). A test's own
# @settings still wins for what it names.
settings.register_profile("watershed", deadline=None)
settings.load_profile("watershed")
