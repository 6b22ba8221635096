"""RepScope: compare the representational geometry of image encoders. `streamlit run app.py`."""
import streamlit as st

st.set_page_config(page_title="RepScope", page_icon="🔭", layout="wide")

# Only finished pages are listed; each later analysis adds its own line here. Every page
# draws the shared sidebar itself (pages.ui.sidebar.render_sidebar) so its widgets are part
# of the page run.
navigation = st.navigation([
    st.Page("pages/features.py", title="Features", icon="🧮", default=True),
    st.Page("pages/affect.py", title="Affect", icon="🎭"),
])
navigation.run()
