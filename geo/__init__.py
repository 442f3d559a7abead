"""Pure geography for Doorstep: coordinates, service areas and the bundled road graph.

Nothing here does I/O except reading the data files bundled in ``geo/data``
(see ``geo/bundled.py``). Import the submodules directly, e.g. ``from geo.coords
import haversine_m``; this package imports nothing heavy on its own.
"""
