"""`python -m inference_core ...` is the same as the `facealbedo` command."""
import sys

from inference_core.cli import main

sys.exit(main())
