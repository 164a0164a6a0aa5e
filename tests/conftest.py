pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.micropython", "tests.fixtures.mqtt",
                  "tests.fixtures.filesystems"]
