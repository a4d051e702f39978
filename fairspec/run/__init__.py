"""Running a plan: stage artifacts and manifests."""
