"""What the Streamlit side uses: the live feed, the relay's REST client, pure charts, Streamlit glue."""
