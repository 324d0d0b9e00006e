"""What the Streamlit side uses: live feed listener, relay client, chart builders, indicators."""
