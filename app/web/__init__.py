"""Browser pages (sign-in, annotator page) served by the API process."""
