"""Pure figure builders and formatting: candles in, Plotly JSON or HTML out; no Streamlit, no I/O."""
