"""The methods: TransCAM (``transcam``), BAO (``bao``, ``readouts``, ``seeds``), CAM-to-label rules
(``cam_labels``), PSA (``psa``), the dense CRF (``crf``) and SeCo (``seco/``)."""
