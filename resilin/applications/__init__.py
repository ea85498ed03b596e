"""The applications a cluster runs (Hadoop), behind one interface."""
