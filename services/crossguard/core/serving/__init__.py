"""The classifier-serving template: everything a modality's gRPC ClassifierService shares.

A modality is a Model (crossguard.core.model_contract), a BatchedClassifier subclass with its
domain logic (serving.classifier), a part parser turning a ClassifyRequest into its domain
input (serving.servicer.PartParser), settings on ServingSettings (serving.serving_settings),
and a ClassifierApp naming those pieces, served by serving.server.main. See
docs/adding-a-classifier.md.
"""
