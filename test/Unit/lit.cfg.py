# -*- Python -*-
# Runs the GoogleTest binaries under unittests/ as lit tests, one test a case.
import os
import lit.formats

config.name = "BALANCEKV-Unit"
config.suffixes = []
config.test_exec_root = os.path.join(config.balancekv_obj_root, "unittests")
config.test_source_root = config.test_exec_root
config.test_format = lit.formats.GoogleTest(".", "Tests")
