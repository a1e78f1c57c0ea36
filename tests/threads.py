"""How many threads a test's llama.cpp model decodes with.

`make test` runs the non-engine tests in two pytest-xdist processes on a 2-core machine: two
models decoding with two threads each would put four spinning threads on two cores, and
llama.cpp's thread barriers then make every token 10-30x slower. So a test under xdist decodes
with one thread, and with two when it has the machine to itself.
"""

import os

TEST_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
