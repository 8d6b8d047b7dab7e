from pathlib import Path
from typing import Optional, Union


class ConversionError(ValueError):
    """Malformed input data; names the file and, where there is one, the line."""

    def __init__(self, path: Union[str, Path], message: str, line: Optional[int] = None):
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")
