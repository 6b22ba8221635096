"""RepScope: compare the representational geometry of image encoders. `streamlit run app.py`.

Streamlit runs this file as `__main__`. A feature extraction's DataLoader workers import it again, as `__mp_main__`
(multiprocessing's safe importing of the main module), and need none of it: the guard keeps them from building the
app (which logged Streamlit's "missing ScriptRunContext" warnings from every worker and slowed its start).
"""
import streamlit as st

from core.studies import analyses

# Only finished pages are listed. The analysis pages come from the analysis registry (each entry names its page,
# title, icon and place); the others are listed here with their place among them. Every page draws the shared
# sidebar itself (views.ui.sidebar.render_sidebar) so its widgets are part of the page run. The folder is `views/`,
# not `pages/`: Streamlit treats a `pages/` folder as legacy auto-discovered pages when a fresh server is first
# opened on a deep link (e.g. /affect), which bypasses this navigation.
OTHER_PAGES = [(10, "views/features.py", "Features", "🧮"), (60, "views/explore.py", "Explore", "🔍"),
               (95, "views/scoreboard.py", "Scoreboard", "🏆"), (100, "views/studies.py", "Studies", "🗂️")]


def main() -> None:
    from views.ui.resources import private_cache  # Streamlit's caches: created in the app, never in a worker

    st.set_page_config(page_title="RepScope", page_icon="🔭", layout="wide")
    private_cache()  # owner-only (0700) before any page writes to it
    # One page per script: an analysis shown as a section of another's page (encoding on Brain) adds none.
    entries = {entry.page: entry for entry in reversed(analyses.analyses())}.values()
    pages = sorted(OTHER_PAGES + [(entry.order, entry.page, entry.title, entry.icon) for entry in entries])
    navigation = st.navigation([st.Page(page, title=title, icon=icon, default=order == pages[0][0])
                                for order, page, title, icon in pages])
    navigation.run()


if __name__ == "__main__":
    main()
