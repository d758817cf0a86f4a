package main

// Page sizes of the connector's queries, chosen so that a query's
// requested cost stays well under Shopify's single-query limit of 1000
// points (a connection costs 2 + first × the cost of a node). A product
// with more variants or images than its first page holds, or a collection
// with more products, gets further queries of MaxNestedPage at a time.
const (
	ProductsPage     = 20
	VariantsPage     = 15
	ImagesPage       = 5
	CollectionsPage  = 15
	CollectionIDPage = 50
	MaxNestedPage    = 250
)

const productFields = `
fragment ProductFields on Product {
  id title handle descriptionHtml vendor productType status tags templateSuffix
  createdAt updatedAt publishedAt
  options(first: 3) { name position values }
  variants(first: $variants) { pageInfo { hasNextPage endCursor } nodes { ...VariantFields } }
  images(first: $images) { pageInfo { hasNextPage endCursor } nodes { ...ImageFields } }
}
fragment VariantFields on ProductVariant {
  id title sku barcode price compareAtPrice position inventoryQuantity taxable
  createdAt updatedAt selectedOptions { value }
}
fragment ImageFields on Image { id url altText width height }
`

// productsQuery reads a page of products in updated_at order, filtered by
// a search query ("updated_at:>='…'") or not.
const productsQuery = `query Products($first: Int!, $after: String, $query: String, $variants: Int!, $images: Int!) {
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { ...ProductFields }
  }
}` + productFields

// productVariantsQuery reads a product's further variants.
const productVariantsQuery = `query ProductVariants($id: ID!, $first: Int!, $after: String) {
  product(id: $id) {
    variants(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { ...VariantFields } }
  }
}
fragment VariantFields on ProductVariant {
  id title sku barcode price compareAtPrice position inventoryQuantity taxable
  createdAt updatedAt selectedOptions { value }
}`

// productImagesQuery reads a product's further images.
const productImagesQuery = `query ProductImages($id: ID!, $first: Int!, $after: String) {
  product(id: $id) {
    images(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { id url altText width height } }
  }
}`

const collectionFields = `
fragment CollectionFields on Collection {
  id title handle descriptionHtml sortOrder templateSuffix updatedAt
  products(first: $productIDs) { pageInfo { hasNextPage endCursor } nodes { id } }
}`

// collectionsQuery reads a page of collections in updated_at order.
const collectionsQuery = `query Collections($first: Int!, $after: String, $query: String, $productIDs: Int!) {
  collections(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { ...CollectionFields }
  }
}` + collectionFields

// collectionQuery reads one collection (for a collections/create or
// collections/update webhook, whose payload lacks the product ids).
const collectionQuery = `query Collection($id: ID!, $productIDs: Int!) {
  collection(id: $id) { ...CollectionFields }
}` + collectionFields

// collectionProductsQuery reads a collection's further product ids.
const collectionProductsQuery = `query CollectionProducts($id: ID!, $first: Int!, $after: String) {
  collection(id: $id) {
    products(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } }
  }
}`

// checkQuery reads the shop and one product id: the token works and may
// read products.
const checkQuery = `query Check {
  shop { name myshopifyDomain }
  products(first: 1) { nodes { id } }
}`
