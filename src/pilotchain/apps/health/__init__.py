"""S1 of the pilot: hospitals share a patient's records with the patient's consent (FHIR R5
Consent, signed by the patient's own key), break-glass with review, and transparency for the
patient. Built on the data exchange (``pilotchain.apps.exchange``); see docs/health.md."""
