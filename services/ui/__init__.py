"""The Streamlit glue: runtime and session queues, the live page, the Plotly component, shared renders, theme."""
