package shopifytest

import "fmt"

// Seed fills the shop with n products (each with two or three sized
// variants and an image or two) and a collection of every second product
// (and, from four products up, one of every third), and returns the ids
// of the products and of the collections.
func (s *Server) Seed(n int) (products, collections []int64) {
	for i := 1; i <= n; i++ {
		sizes := []string{"S", "M", "L"}[:2+i%2]
		p := Product{
			Title:           fmt.Sprintf("Product %d", i),
			DescriptionHTML: fmt.Sprintf("<p>The %d. product.</p>", i),
			Vendor:          "Acme",
			ProductType:     "Mugs",
			Tags:            []string{"seed", fmt.Sprintf("batch-%d", i%3)},
			Options:         []Option{{Name: "Size", Values: sizes}},
		}
		for j, size := range sizes {
			v := Variant{SKU: fmt.Sprintf("SKU-%d-%s", i, size), Price: fmt.Sprintf("%d.%02d", 10+i, j*5), InventoryQuantity: 10 * j, Taxable: true, OptionValues: []string{size}}
			if j == 0 {
				cmp := fmt.Sprintf("%d.00", 20+i)
				v.CompareAtPrice = &cmp
			}
			p.Variants = append(p.Variants, v)
		}
		for j := range 1 + i%2 {
			alt := fmt.Sprintf("Product %d, view %d", i, j+1)
			p.Images = append(p.Images, Image{AltText: &alt, Width: 800, Height: 600})
		}
		products = append(products, s.CreateProduct(p).ID)
	}
	var even, third []int64
	for i, id := range products {
		if i%2 == 1 {
			even = append(even, id)
		}
		if i%3 == 2 {
			third = append(third, id)
		}
	}
	if n > 0 {
		collections = append(collections, s.CreateCollection(Collection{Title: "Every second", DescriptionHTML: "<p>Half of them.</p>", ProductIDs: even}).ID)
	}
	if n >= 4 {
		collections = append(collections, s.CreateCollection(Collection{Title: "Every third", SortOrder: "BEST_SELLING", ProductIDs: third}).ID)
	}
	return products, collections
}
