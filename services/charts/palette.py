"""The charts' colours and font: green up, red down, greys that read on a dark and a light theme."""

UP = "#26a69a"
DOWN = "#ef5350"
UP_VOLUME = "rgba(38,166,154,0.55)"
DOWN_VOLUME = "rgba(239,83,80,0.55)"
GRID = "rgba(128,128,128,0.16)"
SPIKE = "rgba(128,128,128,0.7)"
FONT = "Inter, 'Source Sans Pro', system-ui, sans-serif"
ALERT = "#F0B90B"  # the app's accent: alert markers and thresholds
ALERT_EDGE = "rgba(15,17,21,0.65)"
FLAT = "#8a919e"  # no change: neither green nor red
FLAT_FILL = "rgba(138,145,158,0.14)"
