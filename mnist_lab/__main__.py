import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl+C while PyTorch is still loading: nothing has started, nothing to save
    print("\n中断しました（まだ何も始めていません）。", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
