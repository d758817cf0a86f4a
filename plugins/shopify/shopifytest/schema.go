package shopifytest

import (
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// schemaSDL is the part of Shopify's Admin GraphQL schema the fake serves:
// the shop, products with their options, variants and images, and
// collections with their products. Names, types, nullability and arguments
// follow the published schema; fields the connector has no use for are
// left out (a query naming one fails validation, as a query naming a field
// that does not exist fails at Shopify).
const schemaSDL = `
schema { query: QueryRoot }

scalar DateTime
scalar HTML
scalar Money
scalar URL
scalar UnsignedInt64

type QueryRoot {
  shop: Shop!
  product(id: ID!): Product
  products(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, sortKey: ProductSortKeys = ID, query: String): ProductConnection!
  collection(id: ID!): Collection
  collections(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, sortKey: CollectionSortKeys = ID, query: String): CollectionConnection!
}

type Shop {
  id: ID!
  name: String!
  email: String!
  myshopifyDomain: String!
  ianaTimezone: String!
}

enum ProductStatus { ACTIVE ARCHIVED DRAFT }

enum ProductSortKeys { CREATED_AT ID INVENTORY_TOTAL PRODUCT_TYPE PUBLISHED_AT RELEVANCE TITLE UPDATED_AT VENDOR }

enum CollectionSortKeys { ID RELEVANCE TITLE UPDATED_AT }

enum CollectionSortOrder { ALPHA_ASC ALPHA_DESC BEST_SELLING CREATED CREATED_DESC MANUAL PRICE_ASC PRICE_DESC }

type Product {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  handle: String!
  descriptionHtml: HTML!
  vendor: String!
  productType: String!
  status: ProductStatus!
  tags: [String!]!
  templateSuffix: String
  createdAt: DateTime!
  updatedAt: DateTime!
  publishedAt: DateTime
  totalInventory: Int!
  options(first: Int): [ProductOption!]!
  variants(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): ProductVariantConnection!
  images(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): ImageConnection!
}

type ProductOption {
  id: ID!
  name: String!
  position: Int!
  values: [String!]!
}

type ProductVariant {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  sku: String
  barcode: String
  price: Money!
  compareAtPrice: Money
  position: Int!
  inventoryQuantity: Int
  taxable: Boolean!
  selectedOptions: [SelectedOption!]!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type SelectedOption {
  name: String!
  value: String!
}

type Image {
  id: ID
  altText: String
  url: URL!
  width: Int
  height: Int
}

type Collection {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  handle: String!
  descriptionHtml: HTML!
  sortOrder: CollectionSortOrder!
  templateSuffix: String
  updatedAt: DateTime!
  products(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): ProductConnection!
}

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type ProductConnection { edges: [ProductEdge!]! nodes: [Product!]! pageInfo: PageInfo! }
type ProductEdge { cursor: String! node: Product! }
type ProductVariantConnection { edges: [ProductVariantEdge!]! nodes: [ProductVariant!]! pageInfo: PageInfo! }
type ProductVariantEdge { cursor: String! node: ProductVariant! }
type ImageConnection { edges: [ImageEdge!]! nodes: [Image!]! pageInfo: PageInfo! }
type ImageEdge { cursor: String! node: Image! }
type CollectionConnection { edges: [CollectionEdge!]! nodes: [Collection!]! pageInfo: PageInfo! }
type CollectionEdge { cursor: String! node: Collection! }
`

var schema = gqlparser.MustLoadSchema(&ast.Source{Name: "admin.graphql", Input: schemaSDL})
